"""Training: the datamodule, the sample store, the batch in torch, the LightningModule and its logged metrics."""
