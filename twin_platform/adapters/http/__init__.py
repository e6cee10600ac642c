"""HTTP for crawlers: SSRF guard and a polite, retrying fetcher."""
