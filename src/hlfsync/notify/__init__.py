"""Push delivery of alerts: `base` (Notifier, DeliveryResult), `payloads` (what a push says) and
`factory.build_notifier(settings)` (FCM HTTP v1, or log-only when FCM is not configured).
"""
