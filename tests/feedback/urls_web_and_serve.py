"""The web routes and the serving process's /v1 routes in one urlconf, so one live server plays both in tests."""
from rlhf_site.serve_urls import urlpatterns as serve_patterns
from rlhf_site.urls import urlpatterns as web_patterns

urlpatterns = [*serve_patterns, *web_patterns]
