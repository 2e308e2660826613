"""What each fake provider type serves and expects, shared by the end-to-end tests."""

TYPES = ("openai", "anthropic", "gemini", "azure-openai")
# A model (Azure: a deployment) each fake serves by default.
MODELS = {
    "openai": "gpt2",
    "anthropic": "claude-3-5-haiku-20241022",
    "gemini": "gemini-2.5-flash",
    "azure-openai": "gpt-4o-mini",
}
# The header each type sends its key in, and how the value is written.
AUTH = {
    "openai": ("authorization", "Bearer {}"),
    "anthropic": ("x-api-key", "{}"),
    "gemini": ("x-goog-api-key", "{}"),
    "azure-openai": ("api-key", "{}"),
}
AUTH_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
AZURE_VERSION = "2024-10-21"
