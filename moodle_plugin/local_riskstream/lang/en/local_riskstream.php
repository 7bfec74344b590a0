<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


/**
 * English strings for local_riskstream.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['pluginname'] = 'RiskStream early warning';
$string['alertbody'] = 'RiskStream: {$a->student} is at {$a->level} risk ({$a->risk}%) in {$a->course}.
Why: {$a->explanation}
Current alerts: {$a->url}
Your feedback:
{$a->feedback}';
$string['alertbodyhtml'] = '<p>RiskStream: {$a->student} is at {$a->level} risk ({$a->risk}%) in {$a->course}.</p>
<p>Why: {$a->explanation}</p>
<p><a href="{$a->url}">Current alerts</a></p>
<p>Your feedback: {$a->feedback}</p>';
$string['alertsubject'] = '{$a->student} is at {$a->level} risk in {$a->course}';
$string['alertspage'] = 'Risk alerts';
$string['colexplanation'] = 'Why';
$string['collevel'] = 'Level';
$string['colrisk'] = 'Risk';
$string['colstudent'] = 'Student';
$string['colwhen'] = 'When';
$string['colfeedback'] = 'Feedback';
$string['digestabove'] = 'Daily digest above';
$string['digestabove_desc'] = 'Teachers who have not chosen get a daily digest instead of one notification per alert when their course raised more than this many alerts in the last day (0 = never automatically).';
$string['digestbody'] = 'RiskStream: new risk alerts since the last digest:
{$a}';
$string['digestchoose_digest'] = 'Send me a daily digest instead';
$string['digestchoose_each'] = 'Send me each alert';
$string['digestline'] = '{$a->student}: {$a->level} risk ({$a->risk}%) in {$a->course}, {$a->url}';
$string['digestmode_digest'] = 'You get a daily digest of these alerts.';
$string['digestmode_each'] = 'You get a notification for each alert.';
$string['digestsubject'] = 'RiskStream: {$a} new risk alert(s)';
$string['feedback_acknowledged'] = 'Acknowledged';
$string['feedback_contacted'] = 'Contacted student';
$string['feedback_notuseful'] = 'Not useful';
$string['feedbackconfirm'] = 'Mark the alert about {$a->student} ({$a->level} risk, {$a->when}) as "{$a->action}"?';
$string['feedbacksaved'] = 'Feedback saved: {$a}';
$string['feedbacklatest'] = '{$a->action} by {$a->teacher}, {$a->when}';
$string['level_high'] = 'high';
$string['level_low'] = 'low';
$string['level_medium'] = 'medium';
$string['messageprovider:riskdigest'] = 'A daily digest of new risk alerts in your courses';
$string['messageprovider:riskalert'] = 'A student in your course crossed a risk threshold';
$string['noalerts'] = 'No current risk alerts in this course.';
$string['notifyteachers'] = 'Notify teachers';
$string['notifyteachers_desc'] = 'Send each new alert to the users who may view the course\'s alerts (teachers by default); each chooses popup or email in their notification preferences.';
$string['privacy:metadata:alerts'] = 'Risk alerts about a student in a course, received from the RiskStream service.';
$string['privacy:metadata:alerts:courseid'] = 'The course the alert is about.';
$string['privacy:metadata:alerts:explanation'] = 'The reasons for the alert in words.';
$string['privacy:metadata:alerts:level'] = 'The risk level.';
$string['privacy:metadata:alerts:risk'] = 'The estimated probability of failing or withdrawing.';
$string['privacy:metadata:alerts:timecreated'] = 'When the alert was raised.';
$string['privacy:metadata:alerts:userid'] = 'The student the alert is about.';
$string['privacy:metadata:core_message'] = 'Alerts are sent to teachers as notifications.';
$string['privacy:metadata:preference:digest'] = 'Whether you get risk alerts one by one or as a daily digest.';
$string['privacy:metadata:riskstream'] = 'The RiskStream connector reads the site\'s standard log through a web service to estimate each student\'s risk.';
$string['privacy:metadata:riskstream:courseid'] = 'The course of the logged action.';
$string['privacy:metadata:riskstream:eventname'] = 'What was done.';
$string['privacy:metadata:riskstream:timecreated'] = 'When it was done.';
$string['privacy:metadata:riskstream:userid'] = 'Who did it.';
$string['privacy:metadata:feedback'] = 'Teachers\' feedback on risk alerts about a student.';
$string['privacy:metadata:feedback:action'] = 'The answer: acknowledged, contacted the student, or not useful.';
$string['privacy:metadata:feedback:courseid'] = 'The course of the alert.';
$string['privacy:metadata:feedback:teacherid'] = 'The teacher who gave the feedback.';
$string['privacy:metadata:feedback:timecreated'] = 'When the feedback was given.';
$string['privacy:metadata:feedback:userid'] = 'The student the alert is about.';
$string['riskstream:readfeedback'] = 'Read teachers\' feedback on alerts through the web service';
$string['riskstream:pushalerts'] = 'Store risk alerts through the web service';
$string['riskstream:viewalerts'] = 'View risk alerts and receive alert notifications';
$string['showdays'] = 'Alerts shown';
$string['showdays_desc'] = 'The course page lists alerts raised within this many days.';
$string['usefulshare'] = 'Teachers found {$a->useful} of {$a->answered} answered alerts useful ({$a->percent}%); {$a->alerts} alerts in this course.';
$string['taskdigest'] = 'RiskStream daily digest of alerts';
$string['unknownuser'] = 'A student';
