output "bucket_name" {
  description = "Name of the bucket (the prefix plus a unique suffix)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket, for IAM policies."
  value       = aws_s3_bucket.this.arn
}

output "bucket_uri" {
  description = "S3 URI of the bucket, e.g. for `aws s3 sync . <uri>/datasets/`."
  value       = "s3://${aws_s3_bucket.this.id}"
}

output "region" {
  description = "Region of the bucket."
  value       = var.region
}

output "kms_key_arn" {
  description = "KMS key encrypting the objects (readers need kms:Decrypt on it); absent with AES256."
  value       = local.kms ? aws_kms_key.bucket[0].arn : null
}
