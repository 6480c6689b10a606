"""voicelab's evaluation harness: metrics, protocols, runner and reports."""
