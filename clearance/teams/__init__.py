"""Clearance in Microsoft Teams: a bot on the Microsoft 365 Agents SDK that asks as each person."""
