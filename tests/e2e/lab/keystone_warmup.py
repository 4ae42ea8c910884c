"""Let Keystone finish its lazy start-up before concurrent requests come.

Keystone sets parts of itself up (its policy enforcer among them) on the
first request that needs them. A burst of concurrent first requests, such
as Heat validating several tokens at once right after a start, then gets
spurious 403 "not authorized to perform identity:validate_token" and 500
answers. start.sh runs this right after Keystone answers: one login and one
token validation, alone. Reads the lab's settings from the environment.
"""

import requests
from bootstrap_keystone import ENV, KEYSTONE, login

reply = login({"name": "admin", "domain": {"id": "default"}, "password": ENV["ADMIN_PASSWORD"]},
              {"project": {"name": "admin", "domain": {"id": "default"}}})
token = reply.headers["X-Subject-Token"]
requests.get(f"{KEYSTONE}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token},
             timeout=60).raise_for_status()
