"""The Alertmanager config: every alert to graphapi, then to the team that owns it.

- Grouped by host, so one notification tells what is wrong on one machine.
- Every groundtruth alert goes first to graphapi's webhook (it stores alerts next to the events
  they explain), then on to the owning team's receiver for its severity. Ownership comes from
  the mixin config's team mapping (container or program regexes); the rest goes to the
  default team.
- An exporter that is down or absent inhibits the alerts computed from its metrics: their
  silence or their noise says nothing while it is gone.
"""

from __future__ import annotations

from alerts.rules import alert_name, alerts
from mixin.config import MixinConfig, Team

SEVERITIES = ("critical", "warning")
# A page repeats sooner than a ticket.
REPEAT = {"critical": "1h", "warning": "4h"}
GRAPHAPI_RECEIVER = "graphapi"


def receiver_name(team: str, severity: str) -> str:
    return f"team-{team}-{severity}"


def _team_receivers(team: Team) -> list[dict]:
    out = []
    for severity in SEVERITIES:
        receiver = {"name": receiver_name(team.name, severity)}
        url = team.receivers.get(severity)
        if url:
            receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]
        out.append(receiver)
    return out


def _severity_routes(team: str) -> list[dict]:
    return [
        {
            "receiver": receiver_name(team, severity),
            "matchers": [f'severity="{severity}"'],
            "repeat_interval": REPEAT[severity],
        }
        for severity in SEVERITIES
    ]


def _team_routes(cfg: MixinConfig) -> list[dict]:
    routes = []
    for team in cfg.teams:
        for label, patterns in (("container", team.containers), ("program", team.programs)):
            if patterns:
                routes.append(
                    {
                        "receiver": receiver_name(team.name, "warning"),
                        "matchers": [f'{label}=~"{"|".join(patterns)}"'],
                        "routes": _severity_routes(team.name),
                    }
                )
    # Unowned alerts (and the pipeline's own) go to the default team.
    routes.append(
        {
            "receiver": receiver_name(cfg.default_team, "warning"),
            "routes": _severity_routes(cfg.default_team),
        }
    )
    return routes


def _inhibit_rules(cfg: MixinConfig) -> list[dict]:
    dependent = "|".join(alert_name(cfg, a) for a in alerts(cfg) if a.needs_exporter)
    return [
        {
            "source_matchers": [f'alertname="{cfg.prefix}ExporterDown"'],
            "target_matchers": [f'alertname=~"{dependent}"'],
            "equal": ["job", cfg.host_label],
        },
        {
            # Absent has no host label: it silences the dependent alerts of the whole job.
            "source_matchers": [f'alertname="{cfg.prefix}ExporterAbsent"'],
            "target_matchers": [f'alertname=~"{dependent}"'],
            "equal": ["job"],
        },
    ]


def graphapi_webhook(cfg: MixinConfig) -> dict:
    webhook = {
        "url": f"{cfg.graphapi_url}/api/alerts/webhook",
        "send_resolved": True,
        # graphapi stores every alert of a group: never truncate.
        "max_alerts": 0,
    }
    token_file = cfg.raw.get("graphapi_token_file")
    if token_file:
        webhook["http_config"] = {"authorization": {"credentials_file": token_file}}
    return webhook


def alertmanager_config(cfg: MixinConfig) -> dict:
    receivers = [{"name": GRAPHAPI_RECEIVER, "webhook_configs": [graphapi_webhook(cfg)]}]
    for team in cfg.teams:
        receivers += _team_receivers(team)
    return {
        "route": {
            "receiver": receiver_name(cfg.default_team, "warning"),
            "group_by": [cfg.host_label],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": REPEAT["warning"],
            "routes": [
                {
                    "receiver": GRAPHAPI_RECEIVER,
                    "matchers": [f'alertname=~"{cfg.prefix}.*"'],
                    "continue": True,
                },
                *_team_routes(cfg),
            ],
        },
        "inhibit_rules": _inhibit_rules(cfg),
        "receivers": receivers,
    }
