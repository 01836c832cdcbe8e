"""The platform-free connector: a terminal chat (``lorebot chat``) and a small HTTP JSON API
(``lorebot serve local``) for trying Lorebot without Slack or Discord."""
