# Feature pipeline: a scheduled job that materialises feature views from a warehouse table.
#
# Only Terraform's builtin `terraform_data` resource is used (no provider, no network): the pipeline, one record
# per feature view and the one-off backfill are registered as resources whose outputs the feature platform's
# scheduler reads. Destroying the workspace unregisters them.

terraform {
  required_version = ">= 1.5.0"
}

locals {
  labels = {
    "paved:team"      = var.paved_team
    "paved:workspace" = var.paved_workspace
    "paved:template"  = var.paved_template
  }

  pipeline_id = "fp-${substr(sha256(join("/", [var.paved_team, var.paved_workspace, var.pipeline_name])), 0, 12)}"

  # --- The cron schedule, expanded so the next run can be computed -------------------------------------------
  # Fields: minute, hour, day of month, month, day of week (0 and 7 are Sunday). Each comma-separated item is
  # `*`, `N`, `N-M`, optionally with `/STEP`; `N/STEP` means N to the field's maximum, as in Vixie cron.
  cron_fields = split(" ", var.schedule)
  cron_bounds = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 7]]
  cron_items = [
    for index, field in local.cron_fields : [
      for item in split(",", field) : [
        for m in [regex("^(\\*|([0-9]+)(?:-([0-9]+))?)(?:/([1-9][0-9]*))?$", item)] : {
          from = m[0] == "*" ? local.cron_bounds[index][0] : tonumber(m[1])
          to = (
            m[0] == "*" ? local.cron_bounds[index][1] :
            m[2] != null ? tonumber(m[2]) :
            m[3] != null ? local.cron_bounds[index][1] :
            tonumber(m[1])
          )
          step = m[3] != null ? tonumber(m[3]) : 1
        }
      ][0]
    ]
  ]
  cron_in_range = alltrue(flatten([
    for index, items in local.cron_items : [
      for it in items : it.from >= local.cron_bounds[index][0] && it.to <= local.cron_bounds[index][1] && it.from <= it.to
    ]
  ]))
  cron_allowed = [
    for items in local.cron_items : toset(flatten([
      for it in items : range(it.from, max(it.from, it.to) + 1, it.step)
    ]))
  ]
  run_minutes  = local.cron_allowed[0]
  run_hours    = local.cron_allowed[1]
  run_mdays    = local.cron_allowed[2]
  run_months   = local.cron_allowed[3]
  run_weekdays = toset([for day in local.cron_allowed[4] : day % 7])
  # Cron runs on a day when the day of month OR the day of week matches if both are restricted, else on both.
  either_day = !startswith(local.cron_fields[2], "*") && !startswith(local.cron_fields[4], "*")
  weekday    = { Sun = 0, Mon = 1, Tue = 2, Wed = 3, Thu = 4, Fri = 5, Sat = 6 }

  now   = plantimestamp()
  today = formatdate("YYYY-MM-DD'T'00:00:00Z", local.now)
  calendar = [
    for offset in range(0, 367) : {
      day   = timeadd(local.today, "${offset * 24}h")
      parts = split(" ", formatdate("M D EEE", timeadd(local.today, "${offset * 24}h")))
    }
  ]
  run_days = [
    for date in local.calendar : date.day
    if contains(local.run_months, tonumber(date.parts[0])) && (
      local.either_day
      ? contains(local.run_mdays, tonumber(date.parts[1])) || contains(local.run_weekdays, local.weekday[date.parts[2]])
      : contains(local.run_mdays, tonumber(date.parts[1])) && contains(local.run_weekdays, local.weekday[date.parts[2]])
    )
  ]
  # The first two run days hold the next run: every time on the second one is in the future.
  run_times = flatten([
    for day in slice(local.run_days, 0, min(2, length(local.run_days))) : [
      for hour in local.run_hours : [
        for minute in local.run_minutes : timeadd(day, format("%dh%dm", hour, minute))
      ]
    ]
  ])
  upcoming = sort([for time in local.run_times : time if timecmp(time, local.now) > 0])
  next_run = length(local.upcoming) > 0 ? local.upcoming[0] : null
}

resource "terraform_data" "pipeline" {
  input = {
    id           = local.pipeline_id
    name         = var.pipeline_name
    schedule     = var.schedule
    timezone     = "UTC"
    source_table = var.source_table
    entity_key   = var.entity_key
    online_store = var.online_store
    features     = sort(var.feature_names)
    labels       = local.labels
  }

  lifecycle {
    precondition {
      condition     = local.cron_in_range
      error_message = "schedule has a value out of range or a backwards range: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7."
    }
  }
}

resource "terraform_data" "feature" {
  for_each = toset(var.feature_names)

  input = {
    name         = each.key
    pipeline_id  = terraform_data.pipeline.output.id
    view         = "${var.pipeline_name}__${each.key}"
    source_table = var.source_table
    entity_key   = var.entity_key
    online       = var.online_store
  }
}

# The one-off backfill, recorded when the pipeline is created and again whenever what it computes changes.
resource "terraform_data" "backfill" {
  count = var.backfill_days > 0 ? 1 : 0

  triggers_replace = {
    days     = var.backfill_days
    features = sort(var.feature_names)
    source   = var.source_table
  }

  input = {
    pipeline_id = terraform_data.pipeline.output.id
    days        = var.backfill_days
    from        = formatdate("YYYY-MM-DD", timeadd(local.today, "-${var.backfill_days * 24}h"))
    until       = formatdate("YYYY-MM-DD", local.today)
    views       = sort([for feature in terraform_data.feature : feature.output.view])
  }

  lifecycle {
    # The window is fixed when the backfill is recorded; later plans must not move it.
    ignore_changes = [input]
  }
}
