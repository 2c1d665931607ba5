"""Payloads from the OWASP XSS filter-evasion cheat sheet, planted in prompts and model
outputs, must not execute in Chromium (no dialog, no script or handler in the page)."""
import pytest

from feedback.models import Comparison
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PAYLOADS = [
    "<script>alert('XSS')</script>",
    "<SCRIPT SRC=http://xss.rocks/xss.js></SCRIPT>",
    "javascript:/*--></title></style></textarea></script></xmp><svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(1)//'>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=javascript:alert('XSS')>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    "<a onmouseover=\"alert(document.cookie)\">xxs link</a>",
    "<IMG \"\"\"><SCRIPT>alert(\"XSS\")</SCRIPT>\"\\>",
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    "<IMG SRC=/ onerror=\"alert(String.fromCharCode(88,83,83))\"></img>",
    "<img src=x onerror=\"&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041\">",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<SCRIPT/XSS SRC=\"http://xss.rocks/xss.js\"></SCRIPT>",
    "<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert(\"XSS\")>",
    "<<SCRIPT>alert(\"XSS\");//\\<</SCRIPT>",
    "<iframe src=http://xss.rocks/scriptlet.html <",
    "</TITLE><SCRIPT>alert(\"XSS\");</SCRIPT>",
    "<INPUT TYPE=\"IMAGE\" SRC=\"javascript:alert('XSS');\">",
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<svg/onload=alert('XSS')>",
    "<BODY ONLOAD=alert('XSS')>",
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "<IMG SRC='vbscript:msgbox(\"XSS\")'>",
    "<svg><script>alert(1)</script></svg>",
    "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=javascript:alert('XSS');\">",
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\">",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">",
    "<OBJECT TYPE=\"text/x-scriptlet\" DATA=\"http://xss.rocks/scriptlet.html\"></OBJECT>",
    "<EMBED SRC=\"data:image/svg+xml;base64,PHN2ZyB4bWxuczpzdmc9Imh0dH A6Ly93d3cudzMub3JnLzIwMDAvc3ZnIiB4bWxucz0iaHR0cDovL3d3dy53My5vcmcv MjAwMC9zdmciIHhtbG5zOnhsaW5rPSJodHRwOi8vd3d3LnczLm9yZy8xOTk5L3hs aW5rIiB2ZXJzaW9uPSIxLjAiIHg9IjAiIHk9IjAiIHdpZHRoPSIxOTQiIGhlaWdodD0iMjAw IiBpZD0ieHNzIj48c2NyaXB0IHR5cGU9InRleHQvZWNtYXNjcmlwdCI+YWxlcnQoIlh TUyIpOzwvc2NyaXB0Pjwvc3ZnPg==\" type=\"image/svg+xml\" AllowScriptAccess=\"always\"></EMBED>",
    "[click me](javascript:alert('XSS'))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4=)",
    "![x](x\" onerror=\"alert('XSS'))",
    "<a href=\"javascript&colon;alert('XSS')\">x</a>",
    "<details open ontoggle=alert('XSS')>",
    "```\n</code></pre><script>alert('XSS')</script>\n```",
]

_CHECK = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('.md *')) {
    if (['SCRIPT','IFRAME','OBJECT','EMBED','SVG','IMG','STYLE','META','INPUT','BODY','DETAILS','DIV','TABLE'].includes(el.tagName.toUpperCase())
        && el.tagName !== 'TABLE') bad.push(el.tagName);
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on') || /^\\s*(javascript|vbscript|data):/i.test(attr.value)) bad.push(el.tagName + '@' + attr.name);
    }
  }
  return bad;
}"""


def test_owasp_payloads_do_not_execute(page, live_server, login, alice, tiny_models):
    assert len(PAYLOADS) >= 30
    project = make_project(tiny_models, first_batch=0)
    from feedback.services.projects import comparisons_import

    rows = [{"prompt": f"Prompt {i}: {p}", "response_a": p, "response_b": f"**safe** {i} {p}"} for i, p in enumerate(PAYLOADS)]
    comparisons_import(project=project, rows=rows)
    project.guidelines = "\n\n".join(PAYLOADS)
    project.save()

    login(page, "alice", "alice-pw-123")
    for i in range(len(PAYLOADS)):
        page.goto(f"{live_server.url}/annotate/")
        page.keyboard.press("g")  # guidelines carry every payload too
        page.hover("#response-left")
        page.hover("#response-right")
        assert page.evaluate(_CHECK) == [], PAYLOADS[i]
        assert page.dialogs == [], f"payload executed: {page.dialogs}"
        with page.expect_navigation():
            page.keyboard.press("3")
    assert Comparison.objects.filter(project=project, status="complete").count() == len(PAYLOADS)
    assert page.dialogs == []
