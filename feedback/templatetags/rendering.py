"""Template filters for showing untrusted text."""
from django import template
from django.utils.safestring import mark_safe

from feedback.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> str:
    # nh3 output is sanitized HTML; only it is marked safe, never the raw text.
    return mark_safe(render_markdown(text))
