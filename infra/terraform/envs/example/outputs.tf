output "api_url" {
  description = "The public RAG API (HTTPS)."
  value       = "https://${var.api_domain_name}"
}

output "tgi_internal_url" {
  description = "TGI's internal URL (the API's TWIN_LLM_URL; reachable from the API's tasks only)."
  value       = module.tgi_endpoint.url
}

output "aws_region" {
  description = "Region of everything (TWIN_AWS_REGION)."
  value       = var.aws_region
}

output "artifacts_bucket" {
  description = "Artifacts bucket (TWIN_RELEASE_S3_BUCKET)."
  value       = module.artifacts.bucket_name
}

output "release_prefix" {
  description = "Release prefix in the bucket (TWIN_RELEASE_S3_PREFIX)."
  value       = module.artifacts.release_prefix
}

output "tgi_autoscaling_group" {
  description = "TGI hosts' autoscaling group (TWIN_RELEASE_ASG_NAME)."
  value       = module.tgi_endpoint.autoscaling_group_name
}

output "tgi_num_shard" {
  description = "TGI shards per host (= GPUs of the instance type unless overridden)."
  value       = module.tgi_endpoint.num_shard
}

output "tgi_ami" {
  description = "The Deep Learning AMI the TGI hosts run."
  value       = "${module.tgi_endpoint.ami_name} (${module.tgi_endpoint.ami_id})"
}

output "release_policy_arn" {
  description = "Attach to the user or role that runs `twin models release`."
  value       = module.tgi_endpoint.release_policy_arn
}

output "release_environment" {
  description = "Environment for `twin models release` (export these)."
  value = {
    TWIN_AWS_REGION        = var.aws_region
    TWIN_RELEASE_S3_BUCKET = module.artifacts.bucket_name
    TWIN_RELEASE_S3_PREFIX = module.artifacts.release_prefix
    TWIN_RELEASE_ASG_NAME  = module.tgi_endpoint.autoscaling_group_name
  }
}

output "tgi_log_group" {
  description = "CloudWatch log group of the TGI containers (one stream per host)."
  value       = module.tgi_endpoint.log_group_name
}

output "api_log_group" {
  description = "CloudWatch log group of the API."
  value       = module.rag_api.log_group_name
}

output "ecr_repository_url" {
  description = "Push the API image here (docker/api.Dockerfile)."
  value       = aws_ecr_repository.api.repository_url
}

output "api_image" {
  description = "The image the API's tasks run."
  value       = local.api_image
}

output "database_url_secret_arn" {
  description = "Secrets Manager secret with TWIN_DATABASE_URL."
  value       = module.database.database_url_secret_arn
}

output "database_address" {
  description = "The database's private DNS name (reach it through the tunnel in docs/deploy.md)."
  value       = module.database.address
}

output "ecs_cluster" {
  description = "ECS cluster of the API."
  value       = module.rag_api.cluster_name
}

output "ecs_service" {
  description = "ECS service of the API."
  value       = module.rag_api.service_name
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm (subscribe more endpoints to it)."
  value       = aws_sns_topic.alarms.arn
}
