# Dataset bucket: a private, encrypted S3 bucket for training data and artifacts, with versioning and a
# lifecycle that archives to Glacier. Public access is blocked, ACLs are disabled and plain HTTP is refused.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

locals {
  tags = {
    "paved:team"      = var.paved_team
    "paved:workspace" = var.paved_workspace
    "paved:template"  = var.paved_template
  }

  kms = var.encryption == "aws:kms"
}

# --- Encryption key (SSE-KMS only) ---------------------------------------------------------------------------

resource "aws_kms_key" "bucket" {
  count = local.kms ? 1 : 0

  description             = "Paved dataset bucket ${var.bucket_name} (${var.paved_workspace})"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

resource "aws_kms_alias" "bucket" {
  count = local.kms ? 1 : 0

  name_prefix   = "alias/paved/${var.bucket_name}-"
  target_key_id = aws_kms_key.bucket[0].key_id
}

# --- Bucket ---------------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "this" {
  bucket_prefix = "${var.bucket_name}-"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.encryption
      kms_master_key_id = local.kms ? aws_kms_key.bucket[0].arn : null
    }
    bucket_key_enabled = local.kms
  }
}

resource "aws_s3_bucket_versioning" "this" {
  count = var.versioning ? 1 : 0

  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = var.glacier_after_days > 0 ? [var.glacier_after_days] : []

    content {
      id     = "archive-to-glacier"
      status = "Enabled"

      filter {}

      transition {
        days          = rule.value
        storage_class = "GLACIER"
      }
    }
  }

  dynamic "rule" {
    for_each = var.versioning ? [var.noncurrent_version_expiration_days] : []

    content {
      id     = "expire-previous-versions"
      status = "Enabled"

      filter {}

      noncurrent_version_expiration {
        noncurrent_days = rule.value
      }

      expiration {
        expired_object_delete_marker = true
      }
    }
  }

  # Lifecycle rules on noncurrent versions need versioning to be configured first.
  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # S3 refuses concurrent changes to one bucket's settings: attach the policy after the public access block.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
