"""What a student is trained and scored on: task definitions (task), loading local copies or the hub and
tokenising (loading), the official metrics (metrics). Imports core only.
"""
