-- Per author: chunk length distribution, near-empty and duplicate chunks, embedding coverage.
with chunks as (select * from {{ ref('stg_chunks') }}),

duplicates as (
    select author_id, sum(copies - 1) as duplicate_chunks
    from (select author_id, text_hash, count(*) as copies from chunks group by 1, 2) as t
    group by 1
)

select
    c.author_id,
    count(*) as chunks,
    round(avg(c.token_count), 1) as avg_tokens,
    percentile_cont(0.5) within group (order by c.token_count) as p50_tokens,
    percentile_cont(0.9) within group (order by c.token_count) as p90_tokens,
    max(c.token_count) as max_tokens,
    count(*) filter (where c.token_count < 8) as near_empty_chunks,
    max(d.duplicate_chunks) as duplicate_chunks,
    round(max(d.duplicate_chunks)::numeric / count(*), 4) as duplicate_rate,
    round(avg(case when c.is_embedded then 1 else 0 end), 4) as embedded_share
from chunks as c
join duplicates as d using (author_id)
group by c.author_id
