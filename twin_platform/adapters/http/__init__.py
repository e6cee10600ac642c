"""HTTP for crawlers: SSRF guard, connections pinned to the checked addresses, and a polite, retrying fetcher."""
