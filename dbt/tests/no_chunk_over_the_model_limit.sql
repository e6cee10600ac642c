-- all-MiniLM-L6-v2 reads 256 word pieces, two of them special: longer chunks would be truncated silently.
select chunk_id, token_count from {{ ref('stg_chunks') }} where token_count > 254
