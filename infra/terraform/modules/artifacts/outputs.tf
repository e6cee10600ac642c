output "bucket_name" {
  description = "The bucket (TWIN_RELEASE_S3_BUCKET, TWIN_ARTIFACTS_S3_BUCKET)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "The bucket's ARN."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "The key that encrypts the bucket's objects: readers need kms:Decrypt, writers kms:GenerateDataKey."
  value       = aws_kms_key.this.arn
}

output "release_prefix" {
  description = "Key prefix of released twins (TWIN_RELEASE_S3_PREFIX)."
  value       = var.release_prefix
}
