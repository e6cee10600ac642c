"""Authors are dynamic partitions: every per-author asset is partitioned by author id."""

import dagster as dg

AUTHORS_PARTITION = "authors"

authors_partitions = dg.DynamicPartitionsDefinition(name=AUTHORS_PARTITION)
