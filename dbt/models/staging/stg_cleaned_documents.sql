select
    id as document_id,
    author_id,
    platform,
    category,
    title,
    published_at,
    date_trunc('month', coalesce(published_at, updated_at))::date as month,
    length(text) as characters,
    raw_version
from {{ source('twin', 'cleaned_documents') }}
