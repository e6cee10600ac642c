output "address" {
  description = "The instance's private DNS name."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Postgres port."
  value       = aws_db_instance.this.port
}

output "database_url_secret_arn" {
  description = "Secrets Manager secret holding TWIN_DATABASE_URL (postgresql://...?sslmode=require)."
  value       = aws_secretsmanager_secret.url.arn
}

output "kms_key_arn" {
  description = "Key of the storage and the secret: readers of the secret need kms:Decrypt on it."
  value       = aws_kms_key.this.arn
}

output "security_group_id" {
  description = "The database's security group."
  value       = aws_security_group.this.id
}

output "identifier" {
  description = "DB instance identifier (for CloudWatch metrics and the AWS CLI)."
  value       = aws_db_instance.this.identifier
}
