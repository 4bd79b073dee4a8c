from django.core.checks import run_checks


def ids(**kwargs) -> set[str]:
    return {message.id for message in run_checks(include_deployment_checks=True, **kwargs)}


def test_check_deploy_warns_when_private_addresses_are_allowed(settings):
    settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = True
    assert "webhooks.W001" in ids()
    settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = False
    assert "webhooks.W001" not in ids()
