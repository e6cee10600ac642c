"""Collection stage: importers (and, later, crawlers) that turn sources into raw documents."""
