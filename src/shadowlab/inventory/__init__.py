"""The asset inventory of inference experiments: the SQL view `aws.sagemaker_inference_experiment`
(store/inventory.py reads it), the `/shadowlab/inventory` route and `shadowlab inventory`."""

from shadowlab.inventory.command import add_parser, run

__all__ = ["add_parser", "run"]
