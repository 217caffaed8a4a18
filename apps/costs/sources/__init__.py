"""Where line items come from: the AWS bill (cur), Paved's own metering (metering) and Cost Explorer (cost_explorer)."""
