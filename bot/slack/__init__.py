"""Byline in Slack: `create_slack_app` builds the Bolt app; `run_socket_mode` / `run_http` serve it."""

from bot.slack.app import AskFn, create_slack_app
from bot.slack.feedback import FeedbackStore
from bot.slack.serve import run_http, run_socket_mode

__all__ = ["AskFn", "FeedbackStore", "create_slack_app", "run_http", "run_socket_mode"]
