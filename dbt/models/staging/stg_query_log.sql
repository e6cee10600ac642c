select
    id as request_id,
    created_at,
    created_at::date as day,
    endpoint,
    coalesce(author_id, '(any)') as author_id,
    latency_ms,
    status,
    jsonb_array_length(retrieved) as retrieved_chunks,
    jsonb_array_length(flags) > 0 as flagged,
    model,
    prompt_tokens,
    completion_tokens
from {{ source('twin', 'query_log') }}
