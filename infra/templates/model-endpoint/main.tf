# Model endpoint: a real-time SageMaker endpoint serving one model (container image + artifacts from S3),
# with optional target-tracking autoscaling on invocations per instance.
#
# Changing the image or the artifacts creates a new model and endpoint configuration and updates the endpoint
# in place (SageMaker shifts traffic once the new instances are healthy), so there is no downtime.

terraform {
  required_version = ">= 1.9.0" # validations that refer to other variables

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

  name = "${var.endpoint_name}-${substr(sha1(var.paved_workspace), 0, 8)}"
  # A new model name whenever what it serves changes, so the endpoint configuration is replaced too.
  model_name = "${local.name}-${substr(sha1("${var.model_image_uri} ${var.model_data_url}"), 0, 8)}"

  image      = regex("^(?P<account>[0-9]{12})\\.dkr\\.ecr\\.(?P<region>[a-z0-9-]+)\\.amazonaws\\.com/(?P<repository>[^:@]+)", var.model_image_uri)
  artifacts  = regex("^s3://(?P<bucket>[^/]+)/(?P<key>.+)$", var.model_data_url)
  autoscaled = var.max_instance_count > var.initial_instance_count
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

# --- Execution role: pull the image, read the artifacts, write logs and metrics ------------------------------

data "aws_iam_policy_document" "assume_sagemaker" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ReadModelArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${local.artifacts.bucket}/${local.artifacts.key}"]
  }

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [
      "arn:${data.aws_partition.current.partition}:ecr:${local.image.region}:${local.image.account}:repository/${local.image.repository}",
    ]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/sagemaker/Endpoints/*"]
  }

  statement {
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/Endpoints", "AWS/SageMaker"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${local.name}-"
  description        = "SageMaker execution role of Paved endpoint ${local.name}"
  assume_role_policy = data.aws_iam_policy_document.assume_sagemaker.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "paved-model-endpoint"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- Model, configuration, endpoint ---------------------------------------------------------------------------

resource "aws_sagemaker_model" "this" {
  name               = local.model_name
  execution_role_arn = aws_iam_role.execution.arn

  primary_container {
    image          = var.model_image_uri
    model_data_url = var.model_data_url
    mode           = "SingleModel"

    environment = {
      SAGEMAKER_CONTAINER_LOG_LEVEL = "20"
      SAGEMAKER_REGION              = var.region
    }
  }

  # SageMaker checks the role's access to the image when the model is created.
  depends_on = [aws_iam_role_policy.execution]

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_sagemaker_endpoint_configuration" "this" {
  name_prefix = "${local.name}-"

  production_variants {
    variant_name                                      = "primary"
    model_name                                        = aws_sagemaker_model.this.name
    instance_type                                     = var.instance_type
    initial_instance_count                            = var.initial_instance_count
    initial_variant_weight                            = 1
    container_startup_health_check_timeout_in_seconds = 600
    model_data_download_timeout_in_seconds            = 1200
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_sagemaker_endpoint" "this" {
  name                 = local.name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.this.name
}

# --- Autoscaling ----------------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "variant" {
  count = local.autoscaled ? 1 : 0

  service_namespace  = "sagemaker"
  resource_id        = "endpoint/${aws_sagemaker_endpoint.this.name}/variant/primary"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = var.initial_instance_count
  max_capacity       = var.max_instance_count
}

resource "aws_appautoscaling_policy" "invocations" {
  count = local.autoscaled ? 1 : 0

  name               = "${local.name}-invocations"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.variant[0].service_namespace
  resource_id        = aws_appautoscaling_target.variant[0].resource_id
  scalable_dimension = aws_appautoscaling_target.variant[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.target_invocations_per_instance
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "SageMakerVariantInvocationsPerInstance"
    }
  }
}
