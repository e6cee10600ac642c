select
    id as document_id,
    author_id,
    platform,
    category,
    source_url,
    title,
    published_at,
    version,
    length(content) as characters,
    first_seen,
    updated_at,
    deleted_at is not null as is_tombstone
from {{ source('twin', 'raw_documents') }}
