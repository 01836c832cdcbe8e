"""Supervised fine-tuning: build chat datasets that match serving, train LoRA adapters, evaluate them in the RAG
loop and export them for vLLM and llama.cpp. Heavy libraries (torch, trl, peft, transformers, datasets) are
imported only inside the modules that need them, so ``import bot.sft`` stays cheap.
"""
