"""One cog per feature area: asking (:mod:`.ask`) and knowledge administration (:mod:`.knowledge`)."""
