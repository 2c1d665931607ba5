"""Markdown for untrusted text (model output, prompts, guidelines), sanitized with nh3 (Ammonia).

Model outputs are untrusted: markdown is rendered, then every tag and attribute outside a
small allow-list is dropped, links get rel="noopener noreferrer nofollow", and only
http(s)/mailto URLs survive. Raw HTML in the source is escaped by the markdown step
before sanitizing, so it shows as text.
"""
import functools

import markdown
import nh3

_TAGS = {
    "p", "br", "hr", "pre", "code", "em", "strong", "b", "i", "del", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "span",
}
_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "span": {"class"}, "th": {"align"}, "td": {"align"}}


class _EscapeHtml(markdown.extensions.Extension):
    """Treat raw HTML in the source as text: a response that says <script> shows <script>."""

    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


@functools.lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    # Cached: the same responses and guidelines are rendered for every annotator.
    html = markdown.markdown(text or "", extensions=["fenced_code", "tables", "sane_lists", _EscapeHtml()],
                             output_format="html")
    return nh3.clean(
        html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
