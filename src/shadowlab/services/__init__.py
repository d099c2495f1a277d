"""The rules: what each SageMaker operation means, independent of the wire format."""
