"""The chat template for base models that ship none (Gemma 3 270M base).

It is Gemma's turn format; the system prompt is folded into the first user turn as Gemma does. SFT trains with
this template and the local server renders prompts with it, so both sides always agree. The
``{% generation %}`` block marks assistant tokens for TRL's assistant-only loss.
"""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] ~ '\n\n' %}"
    "{% elif message['role'] == 'assistant' %}"
    "<start_of_turn>model\n{% generation %}{{ message['content'] | trim }}<end_of_turn>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "<start_of_turn>user\n{{ ns.system }}{{ message['content'] | trim }}<end_of_turn>\n"
    "{% set ns.system = '' %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

STOP_STRINGS = ("<end_of_turn>", "<start_of_turn>")
