-- RAG API health by day, endpoint and author: latency percentiles, empty results, errors, tokens.
select
    day,
    endpoint,
    author_id,
    count(*) as requests,
    percentile_cont(0.5) within group (order by latency_ms) as p50_latency_ms,
    percentile_cont(0.95) within group (order by latency_ms) as p95_latency_ms,
    percentile_cont(0.99) within group (order by latency_ms) as p99_latency_ms,
    round(avg(case when status = 200 and retrieved_chunks = 0 then 1 else 0 end), 4) as empty_result_rate,
    round(avg(case when status >= 500 then 1 else 0 end), 4) as server_error_rate,
    count(*) filter (where flagged) as flagged_requests,
    coalesce(sum(prompt_tokens), 0) as prompt_tokens,
    coalesce(sum(completion_tokens), 0) as completion_tokens
from {{ ref('stg_query_log') }}
group by 1, 2, 3
