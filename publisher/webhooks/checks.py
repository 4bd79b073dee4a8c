"""Deployment check: production should not call private addresses (docs/webhooks.md)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def webhooks_private_addresses(app_configs, **kwargs):
    if not settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE:
        return []
    return [Warning(
        "PUBLISHER_WEBHOOKS_ALLOW_PRIVATE is on: webhook endpoints may point at loopback, private and link-local "
        "addresses, so anyone who can add an endpoint can make this server call internal services.",
        hint="Unset it in production unless a receiver really lives on the private network.", id="webhooks.W001")]
