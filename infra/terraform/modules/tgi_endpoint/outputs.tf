output "url" {
  description = "TGI's internal base URL (TWIN_LLM_URL of the RAG API)."
  value       = "http://${aws_lb.this.dns_name}"
}

output "autoscaling_group_name" {
  description = "The hosts' autoscaling group (TWIN_RELEASE_ASG_NAME)."
  value       = aws_autoscaling_group.this.name
}

output "autoscaling_group_arn" {
  description = "ARN of the hosts' autoscaling group."
  value       = aws_autoscaling_group.this.arn
}

output "release_policy_arn" {
  description = "IAM policy that lets its holder release twins: upload under the release prefix and refresh the hosts."
  value       = aws_iam_policy.release.arn
}

output "host_role_name" {
  description = "The hosts' IAM role."
  value       = aws_iam_role.host.name
}

output "security_group_id" {
  description = "The hosts' security group."
  value       = aws_security_group.host.id
}

output "load_balancer_security_group_id" {
  description = "The internal load balancer's security group."
  value       = aws_security_group.lb.id
}

output "log_group_name" {
  description = "CloudWatch log group of the TGI containers (one stream per host)."
  value       = aws_cloudwatch_log_group.tgi.name
}

output "num_shard" {
  description = "TGI shards per host (GPUs used)."
  value       = local.num_shard
}

output "ami_id" {
  description = "The AMI the hosts run."
  value       = local.ami.id
}

output "ami_name" {
  description = "Name of the AMI the hosts run."
  value       = local.ami.name
}
