"""The AWS wire format, driven by botocore's service models (which are the specification).

- `service_models`: the `sagemaker` and `sagemaker-runtime` models, loaded once.
- `validation`: AWS-style (Coral) checks of a value against a shape, with AWS's messages.
- `jsonbody`: reading a request body, hostile ones included (nesting, Unicode, encoding).
- `json11`: the JSON 1.1 control-plane protocol: parse requests, serialise outputs.
- `errors`: AWS errors of both JSON protocols (JSON 1.1, REST-JSON): status from the model,
  headers, body; the one encoder of the control plane, the data plane and the signature gate.
- `scope`: the SigV4 credential scope of an Authorization header (the region a call is for).

Nothing here copies an enum, pattern or limit out of the model: it is all read from it.
"""
