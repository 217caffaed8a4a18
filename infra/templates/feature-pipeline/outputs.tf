output "pipeline_id" {
  description = "Id of the pipeline, stable across re-applies of the same workspace."
  value       = terraform_data.pipeline.output.id
}

output "feature_count" {
  description = "Number of feature views the pipeline materialises."
  value       = length(terraform_data.feature)
}

output "feature_views" {
  description = "Feature name -> feature view (table) name."
  value       = { for name, feature in terraform_data.feature : name => feature.output.view }
}

output "schedule" {
  description = "The cron schedule, in UTC."
  value       = terraform_data.pipeline.output.schedule
}

output "next_run" {
  description = "Next scheduled run after the latest plan (RFC 3339, UTC); null if none within a year."
  value       = local.next_run
}

output "backfill_window" {
  description = "Dates the one-off backfill covers (from inclusive, until exclusive); null without a backfill."
  value = var.backfill_days > 0 ? {
    from  = terraform_data.backfill[0].output.from
    until = terraform_data.backfill[0].output.until
  } : null
}
