-- How many chunks fall in each 32-token bucket, per author and category (for a histogram).
select
    author_id,
    category,
    (token_count / 32) * 32 as bucket_start,
    (token_count / 32) * 32 + 31 as bucket_end,
    count(*) as chunks
from {{ ref('stg_chunks') }}
group by 1, 2, 3, 4
