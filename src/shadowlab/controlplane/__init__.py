"""The SageMaker control-plane API: an operation table and thin transports over the services."""
