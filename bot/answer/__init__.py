"""Answering: the prompt, the LangChain chain and citation parsing. LangChain is imported only here."""
