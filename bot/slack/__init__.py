"""Byline in Slack: `create_slack_app` builds the Bolt app; `HttpServer` / `run_socket_mode` serve it."""

from bot.slack.answers import Answering
from bot.slack.app import SlackApp, create_slack_app
from bot.slack.feedback import FeedbackStore
from bot.slack.serve import HttpServer, run_socket_mode

__all__ = ["Answering", "FeedbackStore", "HttpServer", "SlackApp", "create_slack_app", "run_socket_mode"]
