"""What a guest does on the wire, done by hand (SPEC.md sections 2.4, 2.5, 4).

The lab's own smoke tests use these to play the agent, so that a failure
there points at the lab and not at guestagent: read the server's metadata
through the Heat API (POLL_SERVER_HEAT) or through heat-api-cfn with an
EC2 signature v2 (POLL_SERVER_CFN), and post a deployment's result back
(HEAT_SIGNAL, CFN_SIGNAL).
"""

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from typing import Any

import requests

from tests.e2e.heatapi import HTTP_TIMEOUT, keystone_login


def inputs(deployment: dict) -> dict[str, Any]:
    """A deployment's inputs as a name -> value mapping."""
    return {item["name"]: item.get("value") for item in deployment["inputs"]}


def heat_metadata(occ_heat: dict) -> dict:
    """The server's metadata through the Heat API: the ``heat`` collector.

    ``occ_heat`` is the ``heat`` block of os_collect_config: log in as the
    server's stack-domain user, find orchestration in the catalog, GET the
    resource's metadata.
    """
    login = keystone_login(occ_heat["auth_url"], occ_heat["password"],
                           user_id=occ_heat["user_id"], project_id=occ_heat["project_id"])
    url = (f"{login.endpoint('orchestration', occ_heat.get('region_name'))}/stacks/"
           f"{occ_heat['stack_id']}/resources/{occ_heat['resource_name']}/metadata")
    reply = requests.get(url, headers={"X-Auth-Token": login.token}, timeout=HTTP_TIMEOUT)
    reply.raise_for_status()
    return reply.json()["metadata"]


def sign_v2(method: str, url: str, params: dict[str, str], secret: str) -> str:
    """AWS signature version 2 (HmacSHA256) of a request to ``url``.

    The string signed is the verb, the lower-case host[:port], the path and
    the query sorted by name, each part RFC 3986 percent-encoded, one per
    line. ``params`` must already hold SignatureMethod and friends.
    """
    parts = urllib.parse.urlsplit(url)
    query = "&".join(f"{_quote(key)}={_quote(params[key])}" for key in sorted(params))
    text = "\n".join([method.upper(), parts.netloc.lower(), parts.path or "/", query])
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _quote(value: str) -> str:
    return urllib.parse.quote(str(value), safe="-_.~")


def cfn_metadata(occ_cfn: dict) -> dict:
    """The server's metadata through heat-api-cfn: the ``cfn`` collector.

    A signed DescribeStackResource; heat-api-cfn answers in XML whose
    ``Metadata`` element holds the metadata as JSON text. ``path`` is
    ``<resource>.Metadata[.key...]``.
    """
    resource, _, rest = occ_cfn["path"].partition(".")
    params = {
        "Action": "DescribeStackResource",
        "StackName": occ_cfn["stack_name"],
        "LogicalResourceId": resource,
        "AWSAccessKeyId": occ_cfn["access_key_id"],
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    url = occ_cfn["metadata_url"]
    params["Signature"] = sign_v2("GET", url, params, occ_cfn["secret_access_key"])
    reply = requests.get(url, params=params, timeout=HTTP_TIMEOUT)
    reply.raise_for_status()
    detail = ElementTree.fromstring(reply.content).find(
        "DescribeStackResourceResult/StackResourceDetail/Metadata")
    if detail is None or detail.text is None:
        raise ValueError(f"no Metadata in the CFN answer: {reply.text[:300]}")
    metadata = json.loads(detail.text)
    for key in rest.split(".")[1:]:  # what follows "Metadata"
        metadata = metadata[key]
    return metadata


def heat_signal(deployment: dict, result: dict) -> requests.Response:
    """Post a deployment's result with HEAT_SIGNAL, as the deployment's user."""
    given = inputs(deployment)
    login = keystone_login(given["deploy_auth_url"], given["deploy_password"],
                           user_id=given["deploy_user_id"], project_id=given["deploy_project_id"])
    url = (f"{login.endpoint('orchestration', given.get('deploy_region_name'))}/stacks/"
           f"{given['deploy_stack_id']}/resources/{given['deploy_resource_name']}/signal")
    return requests.post(url, json=result, headers={"X-Auth-Token": login.token},
                         timeout=HTTP_TIMEOUT)


def cfn_signal(deployment: dict, result: dict) -> requests.Response:
    """Post a deployment's result with CFN_SIGNAL, to its pre-signed URL."""
    given = inputs(deployment)
    return requests.request(given.get("deploy_signal_verb") or "POST", given["deploy_signal_id"],
                            json=result, timeout=HTTP_TIMEOUT)
