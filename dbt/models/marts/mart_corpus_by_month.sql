-- Documents, chunks and tokens by author, platform, category and month.
with chunk_totals as (
    select document_id, count(*) as chunks, sum(token_count) as tokens
    from {{ ref('stg_chunks') }}
    group by document_id
)

select
    d.author_id,
    d.platform,
    d.category,
    d.month,
    count(*) as documents,
    coalesce(sum(c.chunks), 0) as chunks,
    coalesce(sum(c.tokens), 0) as tokens,
    sum(d.characters) as characters
from {{ ref('stg_cleaned_documents') }} as d
left join chunk_totals as c using (document_id)
group by 1, 2, 3, 4
