"""Is a channel message a question for the knowledge base? Used by channels in ``questions`` mode, where the bot
answers without a mention and so must stay out of chatter.

Rules, not a model: they are cheap, explainable, and tuned for precision (a wrong answer to chatter annoys a whole
channel; a missed question can still be asked with a mention). English and Chinese. Measured on the labelled set
in ``tests/fixtures/desk/`` (see ``tests/test_desk_detector.py``): rules are changed for the development
messages (``messages.jsonl`` outside its held-out split, ``dev_2.jsonl``) only, never for the held-out ones.
Precision first means whole classes of rhetoric are refused: "Why does X always…?" and "为什么每次…" read as
complaints, so a real question phrased that way must mention the bot.
"""

from __future__ import annotations

import re

MIN_CHARS = 6
"""Shorter messages ("why?", "ok?", "？") are reactions, not questions anyone could answer from documents."""

ADDRESSED = re.compile(r"(?:^|\s)@\S")
"""A message that mentions someone (platform mentions are written as ``@name`` by the adapter) is for them."""

QUESTION_MARK = re.compile(r"[?？]\s*[)\]）]?\s*$|[?？](?=\s)")

EN_OPENERS = re.compile(
    r"^(?:how|what|where|when|which|who|whom|whose|why|is|are|was|were|do|does|did|can|could|should|would|will|"
    r"may|might|shall|has|have|any\s?one|anybody|is there|are there)\b",
    re.IGNORECASE,
)
EN_REQUESTS = re.compile(
    r"\b(?:does anyone know|anyone know|i need to know|need help|help me|please explain|tell me how|"
    r"i(?:'m| am) (?:looking for|trying to find|not sure how)|how do i|how can i|where can i|is it possible|"
    r"i can(?:no|')t (?:find|log|access|open|connect|reset|get)|unable to (?:log|access|connect|find|open)|"
    r"what(?:'s| is) the (?:process|policy|procedure|deadline|limit|number|address|link)|"
    r"i need (?:the|access|help|to know)|(?:looking for|need) (?:the|a|an) (?:link|form|template|config|login|"
    r"password|document|policy)|not sure how to)\b",
    re.IGNORECASE,
)
EN_SOCIAL = re.compile(
    r"\b(?:how are you|how's it going|how was your|how was the|what's up|whats up|sup|you guys|anyone (?:up for|want|"
    r"wanna|going|free|around)|want to grab|lunch|coffee|beer|drinks|weekend|birthday|game last night|"
    r"did you see|are you (?:ok|okay|there|around|free)|ready\?|right\?|really\?|seriously\?|isn't it|"
    r"who's in|who is in|party|movie|joke)\b",
    re.IGNORECASE,
)
EN_CHATTER = re.compile(
    r"^(?:hi|hello|hey|yo|thanks|thank you|thx|ty|ok|okay|k|lol|haha|nice|cool|great|good (?:morning|night|evening|"
    r"afternoon)|morning|gm|bye|cheers|congrats|welcome|np|no problem|sure|yes|no|yep|nope)\b[\s!.,:)\w]*$",
    re.IGNORECASE,
)
EN_NOT_ASKING = re.compile(
    r"^(?:what an?\s|how (?:cool|great|awesome|lucky|nice|fun|sweet|amazing|cute|funny|crazy|weird|lovely)\b|"
    r"can(?:'t|not| not) believe|can you believe|would you believe|guess (?:what|who)|who(?:'d| would) have thought|"
    r"is it just me|any(?:one|body) else\b|who else\b|do you ever\b|is it \w+ yet\b|who wants\b|"
    r"(?:aren't|isn't) (?:it|this|that|these|those|they|we|you)\b|(?:who|why)\b.*\bagain\b|"
    r"why is it always\b|why\b.*\b(?:always|every time)\b.*\b(?:happens?|breaks?|me|us)\b)"
    r"|\?!",
    re.IGNORECASE,
)
"""Messages that look like questions but ask nothing: exclamations ("What a day...", "How cool is that?", "We
shipped?!"), rhetorical questions and complaints ("Can you believe this weather?", "Who broke the build again?",
"Why is it always the printer?", "Anyone else cold?") and offers ("Who wants cake?")."""
EN_VOCATIVE = re.compile(
    r"^(?!(?:hi|hello|hey|folks|team|everyone|all|guys|sorry|also|so|ok|okay|quick|question|btw|well|actually|"
    r"please|doctor)\b)"
    r"[A-Z][a-z]+,\s+(?:\w+\s+){0,2}you\b",
    re.IGNORECASE,
)
"""A message that opens by naming someone ("Sam, can you...") is addressed to them, like an ``@`` mention."""
ANNOUNCEMENT = re.compile(
    r"^(?:\[[^\]]+\]|【[^】]+】|(?:reminder|fyi|heads up|note|notice|announcement|提醒|注意|通知|公告)\s*[:：,，])",
    re.IGNORECASE,
)
"""Bot posts and announcements ("[Jira] SUP-1 moved", "【告警】…", "Reminder: …") inform; they do not ask."""

ZH_QUESTION_WORDS = re.compile(
    r"怎么|怎样|如何|什么|哪|谁|几[天个次点号楼年月周位种步]|第几|多少|多久|多长|为什么|为何|是否|能否|可否|能不能|"
    r"可不可以|有没有|是不是|要不要|需不需要|请问|求助|请教"
)
ZH_REQUESTS = re.compile(
    r"我需要|想问|想了解|(?:登录|登陆|连|打|用|进|访问)不(?:了|上|开)|无法(?:登录|访问|连接|打开)|"
    r"提示.{0,8}(?:错误|失败|无效|锁定)"
)
"""Questions phrased as statements: a need ("我需要一个账号") or a failure report ("VPN 连不上")."""
ZH_NOT_ASKING = re.compile(
    r"谁(?:又|能想到|会想到|想得到|不想|不是|不爱|不喜欢)|怎么(?:又|这么|那么)|[这那]么\w{0,3}[呢啊呀]\W*$|"
    r"为什么(?:每次|总是|老是|又)|难道|"
    r"太\S{0,6}了吧|到底\S*[啊吧]\W*$|真的假的|^\w{1,3}[，,]\s*你"
)
"""Rhetorical questions and complaints ("谁又把构建搞挂了？", "怎么这么快呢", "太离谱了吧？") and messages that open by
naming someone ("小刘，你那边…")."""
ZH_FINAL_PARTICLE = re.compile(r"[吗么呢][\s。.!！~～]*$")
ZH_SOCIAL = re.compile(
    r"吃饭|吃了吗|午饭|晚饭|下班了|周末|放假去|喝咖啡|喝奶茶|聚餐|生日|电影|游戏|好玩|你好吗|最近好吗|在吗|在不在|"
    r"干嘛呢|哈哈|嘻嘻|累不累|开心|一起去|拼单|拼车|有人(?:一起|要)|奶茶|下午茶|食堂|外卖|团建"
)
ZH_CHATTER = re.compile(
    r"^(?:大家好|你好|您好|早上好|早安|晚安|下午好|谢谢|多谢|感谢|好的|收到|嗯|哦|好|辛苦了|恭喜)[\s\w!！。,，~～]*$"
)
CJK = re.compile(r"[\u4e00-\u9fff]")


def is_question(text: str) -> bool:
    """True when ``text`` asks for information the knowledge base could give (not chatter, greetings or thanks,
    not a social question, not addressed to someone else)."""
    text = " ".join(text.split())
    if len(text) < MIN_CHARS or ADDRESSED.search(text) or ANNOUNCEMENT.match(text):
        return False
    if CJK.search(text):
        return _chinese_question(text)
    return _english_question(text)


def _english_question(text: str) -> bool:
    if EN_CHATTER.match(text) or EN_SOCIAL.search(text) or EN_NOT_ASKING.search(text) or EN_VOCATIVE.match(text):
        return False
    if EN_REQUESTS.search(text):
        return True
    words = re.findall(r"[A-Za-z']+", text)
    if len(words) < 3:
        return False
    return bool(QUESTION_MARK.search(text) or EN_OPENERS.match(text))


def _chinese_question(text: str) -> bool:
    if ZH_CHATTER.match(text) or ZH_SOCIAL.search(text) or ZH_NOT_ASKING.search(text):
        return False
    if len(CJK.findall(text)) < 4:
        return False
    return bool(
        QUESTION_MARK.search(text)
        or ZH_QUESTION_WORDS.search(text)
        or ZH_FINAL_PARTICLE.search(text)
        or ZH_REQUESTS.search(text)
    )
