"""The KFP database side: the native schema the toolkit writes into."""
