"""The Slack adapter on slack-bolt (asyncio): events, slash commands and buttons in, core calls, Block Kit out.

Build the app with :func:`connectors.slack.app.build_app` and run it with :func:`connectors.slack.runner.serve`.
"""
