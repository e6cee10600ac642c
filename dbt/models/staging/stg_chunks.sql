select
    id as chunk_id,
    document_id,
    author_id,
    platform,
    category,
    published_at,
    chunk_index,
    token_count,
    length(btrim(text)) as characters,
    md5(text) as text_hash,
    embedding is not null as is_embedded,
    embedding_model
from {{ source('twin', 'chunks') }}
