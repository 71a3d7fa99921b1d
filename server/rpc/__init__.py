"""The contract of a call, shared by the interceptors and the servicers: the per-call scope
(context.py), the one error table (status.py), the REST status of a success
(http_status.py), and what the proto declares per method (services.py, policy.py,
required.py, rest_json.py). Below both in the import layers; it imports only the domain and
generated code."""
