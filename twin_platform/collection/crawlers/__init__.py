"""Crawlers: an author's pages on Medium, Substack, LinkedIn, GitHub and any article URL."""
