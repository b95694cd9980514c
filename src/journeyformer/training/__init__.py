"""Training: the datamodule, the batch in torch, the LightningModule and its logged metrics."""
