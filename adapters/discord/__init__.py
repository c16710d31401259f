"""The Discord edge: discord.py client, `/incident` app commands, DiscordChat(ChatPort)."""
