"""The course's serverless streaming action and `streamock`, the socket streamer's mock."""
